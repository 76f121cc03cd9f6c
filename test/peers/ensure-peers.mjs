#!/usr/bin/env node
// pretest: build the project, then make sure the real peers the tests talk to are installed.
// As root, missing Debian packages are installed with apt-get; otherwise we stop and print
// the one command to run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** binary (or probe) -> Debian package that provides it */
const PEERS = [
  ['storescu', 'dcmtk'],
  ['storescp', 'dcmtk'],
  ['dcmdump', 'dcmtk'],
  ['Orthanc', 'orthanc'],
  ['dcm2niix', 'dcm2niix'],
  ['sshd', 'openssh-server', '/usr/sbin/sshd'],
  ['sftp', 'openssh-client'],
  ['7z', 'p7zip-full'],
  ['zip', 'zip'],
  ['unzip', 'unzip'],
  ['dciodvfy', 'dicom3tools'],
  ['gdcmanon', 'libgdcm-tools'],
  // the SFTP peer's server-side SHA-256 (openssl dgst), as on a real data centre's server
  ['openssl', 'openssl'],
];

function have(bin, path) {
  if (path && existsSync(path)) return true;
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

// Debian's python3 (not a pyenv one on PATH): that is where python3-pydicom installs.
function havePython(module) {
  return spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

const missing = new Set();
for (const [bin, pkg, path] of PEERS) if (!have(bin, path)) missing.add(pkg);
if (!havePython('pydicom')) missing.add('python3-pydicom');
// pydicom decodes pixel data only with NumPy, which is merely a Recommends of python3-pydicom
// (and we install with --no-install-recommends): the synth tests read pixels with it.
if (!havePython('numpy')) missing.add('python3-numpy');

if (missing.size > 0) {
  const pkgs = [...missing];
  const cmd = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
  if (process.getuid && process.getuid() === 0) {
    console.error(`pretest: installing ${pkgs.join(' ')} with apt-get`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } else {
    console.error(`pretest: the tests need real DICOM/SSH peers that are not installed: ${pkgs.join(', ')}`);
    console.error(`run as root:\n  sudo sh -c '${cmd}'`);
    process.exit(1);
  }
}

// Tests run the built CLIs in dist/ (as users do); make sure they are current.
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
