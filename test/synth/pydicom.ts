import { execa } from 'execa';
import { existsSync } from 'node:fs';

/**
 * Read DICOM files with pydicom (an independent reader, not our encoder's twin) and return
 * the chosen keywords as strings, the private block and an MD5 of the pixel values.
 * /usr/bin/python3 is the Python that has pydicom (the one on PATH may not).
 */
const SCRIPT = String.raw`
import sys, json, hashlib
import pydicom
out = {}
ENC = {'ISO_IR 100': 'latin1', 'ISO_IR 192': 'utf-8'}
def text(ds, v):
    # Implicit VR private elements have no dictionary VR: pydicom gives their bytes (UN).
    if isinstance(v, bytes):
        return v.decode(ENC.get(ds.get('SpecificCharacterSet'), 'ascii')).rstrip(' \x00')
    return str(v)
keywords = json.loads(sys.argv[1])
for path in sys.argv[2:]:
    ds = pydicom.dcmread(path)
    rec = {}
    for k in keywords:
        if k in ds:
            v = ds.data_element(k).value
            if isinstance(v, (list, pydicom.multival.MultiValue)):
                v = '\\'.join(str(x) for x in v)
            rec[k] = str(v)
    rec['_transferSyntax'] = str(ds.file_meta.TransferSyntaxUID)
    rec['_implementation'] = str(ds.file_meta.ImplementationClassUID)
    arr = ds.pixel_array
    rec['_pixels'] = hashlib.md5(arr.astype('<u2').tobytes()).hexdigest()
    rec['_max'] = int(arr.max())
    rec['_shape'] = list(arr.shape)
    block = ds.private_block(0x0029, 'FIONA SYNTH 1.0')
    rec['_private'] = [text(ds, block[0x10].value), text(ds, block[0x11].value)]
    nested = block[0x20].value[0]
    rec['_privateNested'] = text(ds, nested.private_block(0x0029, 'FIONA SYNTH 1.0')[0x22].value[0][0x00291023].value)
    ras = ds.RequestAttributesSequence[0]
    rec['_request'] = [str(ras.RequestedProcedureID), str(ras.ScheduledProcedureStepID)]
    out[path] = rec
print(json.dumps(out))
`;

export type PyRecord = Record<string, string> & {
  _pixels: string;
  _max: number;
  _shape: number[];
  _private: string[];
  _privateNested: string;
  _request: string[];
};

export async function readWithPydicom(files: string[], keywords: string[]): Promise<Record<string, PyRecord>> {
  if (!existsSync('/usr/bin/python3')) throw new Error('/usr/bin/python3 is missing: run `apt-get install -y python3 python3-pydicom python3-numpy`');
  const r = await execa('/usr/bin/python3', ['-c', SCRIPT, JSON.stringify(keywords), ...files], { reject: false });
  if (r.exitCode !== 0) {
    if (/No module named 'pydicom'/.test(r.stderr)) throw new Error('pydicom is missing: run `apt-get install -y python3-pydicom python3-numpy`');
    if (/No module named 'numpy'|req\. NumPy/.test(r.stderr)) throw new Error('NumPy is missing (pydicom needs it for pixel data): run `apt-get install -y python3-numpy`');
    throw new Error(`pydicom failed: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as Record<string, PyRecord>;
}
