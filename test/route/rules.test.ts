import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileAutoIdPattern } from '../../src/lib/route/autoid-pattern.js';
import { compilePattern, patternMatches } from '../../src/lib/route/pattern.js';
import { parseRules, RulesError, type RawRules } from '../../src/lib/route/parse.js';
import { FileRulesSource } from '../../src/lib/route/source.js';
import { makeTempDir } from '../helpers/tmp.js';

const DEST = 'dicom://RPACS@127.0.0.1:104?calling=FIONA';

function raw(partial: Partial<RawRules>): RawRules {
  return { routes: [], coupling: [], projects: [{ name: 'P1', destination: DEST }], ...partial };
}

describe('routing patterns (Python re.match meaning)', () => {
  it('anchors at the start only, as re.match does', () => {
    const p = compilePattern('NT\\d+');
    expect(patternMatches(p, 'NT0012')).toBe(true);
    expect(patternMatches(p, 'NT0012-extra')).toBe(true);
    expect(patternMatches(p, 'xNT0012')).toBe(false);
  });
  it('translates Python named groups and a leading (?i)', () => {
    expect(patternMatches(compilePattern('(?P<site>BGO)-(?P=site)'), 'BGO-BGO')).toBe(true);
    expect(patternMatches(compilePattern('(?i)proj'), 'PROJ01')).toBe(true);
    expect(patternMatches(compilePattern('proj\\Z'), 'proj')).toBe(true);
    expect(patternMatches(compilePattern('proj\\Z'), 'proj1')).toBe(false);
  });
});

describe('automatic ID patterns', () => {
  it('generates IDs of the fixed form and counts the capacity', () => {
    const g = compileAutoIdPattern('^NT-[0-9]{4}$');
    expect(g.capacity).toBe(10_000);
    for (let i = 0; i < 50; i++) expect(g.generate()).toMatch(/^NT-\d{4}$/);
    expect(compileAutoIdPattern('S[A-C]\\d').capacity).toBe(30);
  });
  it('refuses patterns without a fixed form', () => {
    expect(() => compileAutoIdPattern('NT\\d+')).toThrow(/fixed form/);
    expect(() => compileAutoIdPattern('FIXED')).toThrow(/same ID/);
    expect(() => compileAutoIdPattern('[0-9')).toThrow(/unclosed/);
  });
});

describe('rules validation', () => {
  const opts = { origin: 'test', baseDir: '/' };

  it('refuses an invalid regex, naming the entry and field', () => {
    const bad = raw({ routes: [{ name: 'mri-study', project: 'P1', patientId: 'NT(\\d+' }] });
    expect(() => parseRules(bad, opts)).toThrow(RulesError);
    expect(() => parseRules(bad, opts)).toThrow(/routes\[0\] \(mri-study\): patientId is not a valid regular expression "NT\(\\\\d\+"/);
  });

  it('refuses an unknown project, naming the entry', () => {
    const bad = raw({ routes: [{ project: 'P1', patientId: 'A' }, { name: 'second', project: 'NOPE', patientId: 'B' }] });
    expect(() => parseRules(bad, opts)).toThrow(/routes\[1\] \(second\): unknown project "NOPE" \(known: P1\)/);
    const badCl = raw({ coupling: [{ accessionNumber: 'A1', project: 'NOPE', subject: 'S1', date: '2024-01-01' }] });
    expect(() => parseRules(badCl, opts)).toThrow(/coupling\[0\]: unknown project "NOPE"/);
  });

  it('refuses a route with no way to name the pseudonym', () => {
    const bad = raw({ routes: [{ name: 'aet-only', project: 'P1', incomingAet: 'P1AET' }] });
    expect(() => parseRules(bad, opts)).toThrow(/aet-only.*derives no automatic IDs/);
    const ok = raw({
      projects: [{ name: 'P1', destination: DEST, autoId: { pattern: 'P1-[0-9]{3}' } }],
      routes: [{ name: 'aet-only', project: 'P1', incomingAet: 'P1AET' }],
    });
    expect(parseRules(ok, opts).routes[0]!.incomingAet).toBe('P1AET');
  });

  it('refuses bad destinations, AE titles, features and coupling entries', () => {
    expect(() => parseRules(raw({ projects: [{ name: 'P1', destination: 'ftp://x/y' }] }), opts)).toThrow(/projects\[0\] \(P1\): destination must be dicom:\/\/ or sftp:\/\//);
    expect(() => parseRules(raw({ projects: [{ name: 'P1', destination: DEST, features: ['shred'] }] }), opts)).toThrow(/unknown feature "shred"/);
    expect(() => parseRules(raw({ routes: [{ project: 'P1', incomingAet: 'WAY_TOO_LONG_AE_TITLE', patientId: 'x' }] }), opts)).toThrow(/incomingAet is not a valid AE title/);
    expect(() => parseRules(raw({ coupling: [{ accessionNumber: 'A1', project: 'P1', subject: 'S1' }] }), opts)).toThrow(/coupling\[0\]: has no date/);
    expect(() => parseRules(raw({ coupling: [{ project: 'P1', subject: 'S1', date: '2024-01-01' }] }), opts)).toThrow(/neither an AccessionNumber nor a StudyInstanceUID/);
    expect(() => parseRules(raw({ coupling: [{ accessionNumber: 'A', project: 'P1', subject: 'S\\1', date: '2024-01-01' }] }), opts)).toThrow(/cannot be a PatientID/);
  });

  it('reads FIONA REDCap field names as well as fiona names', () => {
    const rules = parseRules({
      routes: [{ record_id: '7', routing_active: '1', routing_dest_project: 'P1', routing_incoming_aetitle: 'FIONA', routing_sending_aetitle: '', routing_allowed_patientid: 'NT', routing_allowed_patientname: '', routing_event_name: 'baseline' }],
      coupling: [{ record_id: '3', cl_accessionnumber: 'ACC1', cl_projectname: 'P1', cl_subjectid: 'S-01', cl_eventname: 'fu', cl_date: '2024-02-01 10:20' }, { record_id: '4', cl_accessionnumber: '', cl_projectname: '', cl_subjectid: '' }],
      projects: [{ record_id: '1', project_name: 'P1', project_active: '1', project_features___0: '1', project_features___2: '0', project_use_autoid: '0', project_destination: DEST }],
    }, opts);
    expect(rules.routes[0]).toMatchObject({ name: '7', project: 'P1', incomingAet: 'FIONA', event: 'baseline' });
    expect(rules.routes[0]!.sendingAet).toBeUndefined();
    expect(rules.coupling).toHaveLength(1);
    expect(rules.coupling[0]!.date.getDate()).toBe(1);
    expect([...rules.projects.get('P1')!.features]).toEqual(['drop-presentation-states']);
    expect(rules.couplingExpiryDays).toBe(14);
  });

  it('loads a file, resolves rules paths beside it and names the file in errors', async () => {
    const { dir, cleanup } = await makeTempDir();
    try {
      await writeFile(join(dir, 'p1.json'), '{}');
      const file = join(dir, 'routes.json');
      await writeFile(file, JSON.stringify({ projects: { P1: { destination: DEST, rules: 'p1.json' } }, routes: [{ project: 'P1', patientId: 'A' }] }));
      const rules = await new FileRulesSource(file).load();
      expect(rules.projects.get('P1')!.rules).toBe(join(dir, 'p1.json'));
      await writeFile(file, JSON.stringify({ projects: { P1: { destination: DEST, rules: 'missing.json' } } }));
      await expect(new FileRulesSource(file).load()).rejects.toThrow(`${file}: projects[0] (P1): rules file not found`);
      await writeFile(file, '{"routes": [');
      await expect(new FileRulesSource(file).load()).rejects.toThrow(/not valid JSON/);
      // A misspelt key would drop a condition silently: refused, naming the entry and the key.
      await writeFile(file, JSON.stringify({ projects: { P1: { destination: DEST } }, routes: [{ name: 'typo', project: 'P1', patientId: 'A', sendingAET: 'MRI1' }] }));
      await expect(new FileRulesSource(file).load()).rejects.toThrow(/routes\[0\] \(typo\): unknown key "sendingAET"/);
      await writeFile(file, JSON.stringify({ projects: { P1: { destination: DEST, feature: ['x'] } } }));
      await expect(new FileRulesSource(file).load()).rejects.toThrow(/projects\.P1: unknown key "feature"/);
    } finally {
      await cleanup();
    }
  });
});
