import { Option } from 'commander';
import { createLogger } from '../lib/cli/output.js';
import { loadConfig } from '../lib/config/index.js';
import { createProgram, parseIntOption } from '../lib/cli/program.js';
import { UsageError } from '../lib/errors.js';
import { EventWriter, makeEvent } from '../lib/events/index.js';
import { writeJsonAtomic } from '../lib/site/index.js';
import { type Charset, SERIES_CYCLE, type SeriesType, type Syntax, type VendorName, isSeriesType, synthesize } from '../lib/synth/index.js';

const EXTRA_HELP = `
Series types cycle in this order: ${SERIES_CYCLE.join(', ')}.
Files: OUT/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
The same options always give byte-identical files; another --seed gives other patients.

Examples:
  fiona-synth --out /tmp/demo --patients 2 --series 6 --instances 20
  fiona-synth --out fixtures --seed 7 --charset latin1 --manifest fixtures/manifest.json
  fiona-synth --out big --patients 10 --instances 100 --rows 128 --json | jq -r .path`;

interface Opts {
  config?: string;
  out?: string;
  patients: number;
  studiesPerPatient: number;
  series: number;
  instances: number;
  rows: number;
  seed: string;
  charset: Charset;
  vendor: VendorName | 'mixed';
  types?: string;
  transferSyntax: Syntax;
  burnedIn?: boolean;
  fsync: boolean;
  json?: boolean;
  paths?: boolean;
  manifest?: string;
  quiet?: boolean;
}

function parseTypes(value: string | undefined): SeriesType[] | undefined {
  if (value === undefined) return undefined;
  const types = value.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '');
  if (types.length === 0) throw new UsageError('--types: give at least one series type');
  for (const t of types) {
    if (!isSeriesType(t)) throw new UsageError(`--types: unknown series type "${t}" (known: ${SERIES_CYCLE.join(', ')})`);
  }
  return types as SeriesType[];
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram('fiona-synth', 'Write deterministic synthetic MR studies (DICOM Part 10) with realistic identifying values.', EXTRA_HELP)
    .option('--out <dir>', 'output folder (required)')
    .option('--patients <n>', 'number of patients', parseIntOption('--patients', 1, 100_000), 1)
    .option('--studies-per-patient <n>', 'studies of each patient, months apart', parseIntOption('--studies-per-patient', 1, 100), 1)
    .option('--series <n>', 'series per study, cycling through the series types', parseIntOption('--series', 1, 1000), SERIES_CYCLE.length)
    .option('--instances <n>', 'instances (images) per series', parseIntOption('--instances', 1, 100_000), 10)
    .option('--rows <n>', 'rows = columns of every image (16-bit, 12 bits stored)', parseIntOption('--rows', 16, 2048), 256)
    .option('--seed <s>', 'seed (any string); the same seed gives the same files', '1')
    .addOption(new Option('--charset <name>', 'character set of names: ascii (no SpecificCharacterSet), latin1 (ISO_IR 100), utf8 (ISO_IR 192)').choices(['ascii', 'latin1', 'utf8']).default('ascii'))
    .addOption(new Option('--vendor <name>', 'scanner vendor; mixed cycles SIEMENS, GE, Philips by patient and study').choices(['siemens', 'ge', 'philips', 'mixed']).default('mixed'))
    .option('--types <list>', `comma-separated series types to cycle through (default ${SERIES_CYCLE.join(',')})`)
    .addOption(new Option('--transfer-syntax <ts>', 'explicit (Explicit VR Little Endian), implicit (Implicit VR Little Endian), big (Explicit VR Big Endian, retired)').choices(['explicit', 'implicit', 'big']).default('explicit'))
    .option('--burned-in', 'mark the last series of each study BurnedInAnnotation YES (and draw a bar where text would be)')
    .option('--no-fsync', 'do not fsync each file (faster on slow disks; files are still written via temp name + rename)')
    .option('--json', 'print NDJSON: a "synthesized" event per file, then a "synth-summary" event with the identifying values')
    .option('--paths', 'print the path of each file written, one per line')
    .option('--manifest <file>', 'also write the summary (patients, studies, series, identifying values) as JSON to this file')
    .option('-q, --quiet', 'no summary line on stderr');
  program.parse(argv);
  const o = program.opts<Opts>();
  if (!o.out) throw new UsageError('--out DIR is required');
  if (o.json && o.paths) throw new UsageError('--json and --paths cannot be combined');
  const types = parseTypes(o.types);
  // fiona-synth needs nothing from the config, but a --config that names a bad file is still an error.
  if (o.config) loadConfig(o.config);
  const log = createLogger('fiona-synth', o.quiet);
  const events = new EventWriter();
  const started = process.hrtime.bigint();

  const summary = await synthesize(
    {
      out: o.out,
      seed: o.seed,
      patients: o.patients,
      studiesPerPatient: o.studiesPerPatient,
      series: o.series,
      instances: o.instances,
      rows: o.rows,
      charset: o.charset,
      vendor: o.vendor,
      types,
      transferSyntax: o.transferSyntax,
      burnedIn: Boolean(o.burnedIn),
      fsync: o.fsync,
    },
    (info) => {
      if (o.json) events.write(makeEvent('synthesized', { ...info }));
      else if (o.paths && !events.isBroken) process.stdout.write(`${info.path}\n`);
    },
  );
  if (o.manifest) await writeJsonAtomic(o.manifest, summary);
  if (o.json) events.write(makeEvent('synth-summary', { ...summary }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  log.info(
    `wrote ${summary.files} files (${(summary.bytes / 1e6).toFixed(1)} MB) for ${summary.patients.length} patient(s) in ${o.out} ` +
      `in ${seconds.toFixed(1)} s`,
  );
  return 0;
}
