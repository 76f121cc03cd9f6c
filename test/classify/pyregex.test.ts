import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compilePythonRegex, PyRegexError } from '../../src/lib/classify/pyregex.js';

/**
 * The translation is checked against Python's own `re.search` (the dialect FIONA's rule files
 * were written for): every pattern below is run by /usr/bin/python3 and by the translated
 * RegExp on the same subjects, and the match/no-match answers must agree.
 */
const PATTERNS = [
  '^GE MEDICAL', '^SIEMENS', 'MOSAIC', 'epf..2d1_90', 'fl3d8r$', '^.*mprage_promo', 'A$', 'tfl3d1_16ns',
  '0, 256, 256, 0', '(?i)t1', '(?i)^flair', '(?s)a.b', 'a.b', '(?m)^b', '^b', 'x$', '(?m)x$',
  '(?i:mprage)_T1', 'T1_(?i:mprage)', '(?i:[a-c]+)X', '(?P<seq>ep)_(?P=seq)', String.raw`\Ahead`, String.raw`tail\Z`, 'a{,2}b', 'a{2,}',
  'x{}', '[]a]', '[^]a]+', String.raw`\d{3}`, String.raw`\bT2\b`, '(?x) t 1   # comment', '(?x)[ ]x', 'a(?#note)b', String.raw`\x41`, String.raw`\101`,
  String.raw`\0`, String.raw`\a`, '(a)(b)\\2', 'T1|T2', '(?:ax|sag)ial', 'b(?=c)', 'b(?!c)', '(?<=a)b', '(?<!a)b', '{', 'a{1', String.raw`\.dcm$`,
  '(?is)^t1.flair', '[a-z]+_[0-9]', String.raw`[\w.]+`, '(?a)\\w+', 'ep_b0?', '*?'.slice(1) + 'x', '[.]', 'a++'.slice(0, 2),
];
const SUBJECTS = [
  'GE MEDICAL SYSTEMS', 'SIEMENS', 'Philips Medical Systems', 'ORIGINAL\\PRIMARY\\MOSAIC', 'epfid2d1_90', 'fl3d8r',
  'research/mprage_promo', 'T1 MPRAGE', 't1_mprage_sag', 'FLAIR ax', 'flair', 'a\nb', 'axb', 'a\nb\n', 'x\n', 'x\ny',
  'MPRAGE_T1', 'mprage_T1', 'mPrAgE_T1', 'T1_MPRAGE', 'abcX', 'ABCX', 'ep_ep', 'head tail', 'tail', 'tail\n', 'ab', 'aab',
  'aaab', 'b', 'x{}', ']', 'a]b', '123', 'T2 ax', 'T2_ax', 't1', 'x', 'A', '\0', '\x07', 'abb', 'ab', 'bc', 'bd', 'ep_b',
  'ep_b0', 'img.dcm', 'T1\nFLAIR', 'T1-FLAIR', '[0, 256, 256, 0]', 'Müller', '', 'a{1', '{',
];

describe('Python re patterns translated to JavaScript', () => {
  it('agrees with Python re.search on FIONA-style patterns', async () => {
    // The system Python (the one the peers' pydicom is installed for), never a pyenv shim.
    if (!existsSync('/usr/bin/python3')) throw new Error('/usr/bin/python3 is not installed: run `apt-get install -y python3`');
    const script = [
      'import json, re, sys',
      'data = json.load(sys.stdin)',
      'out = []',
      'for p in data["patterns"]:',
      '    try:',
      '        r = re.compile(p)',
      '        out.append([bool(r.search(s)) for s in data["subjects"]])',
      '    except re.error as e:',
      '        out.append(str(e))',
      'print(json.dumps(out))',
    ].join('\n');
    const { stdout } = await execa('/usr/bin/python3', ['-c', script], {
      input: JSON.stringify({ patterns: PATTERNS, subjects: SUBJECTS }),
    });
    const expected = JSON.parse(stdout) as Array<boolean[] | string>;
    const mismatches: string[] = [];
    PATTERNS.forEach((p, i) => {
      const want = expected[i]!;
      let re: RegExp;
      try {
        re = compilePythonRegex(p);
      } catch (err) {
        if (typeof want !== 'string') mismatches.push(`${JSON.stringify(p)}: refused (${(err as Error).message}) but Python accepts it`);
        return;
      }
      if (typeof want === 'string') {
        mismatches.push(`${JSON.stringify(p)}: accepted but Python refuses it (${want})`);
        return;
      }
      SUBJECTS.forEach((s, k) => {
        if (re.test(s) !== want[k]) mismatches.push(`${JSON.stringify(p)} on ${JSON.stringify(s)}: python ${want[k]}, fiona ${!want[k]}`);
      });
    });
    expect(mismatches).toEqual([]);
  });

  it.each([
    ['(?>abc)', 'atomic'],
    ['a*+', 'possessive'],
    ['a{1,2}+', 'possessive'],
    ['(?(1)a|b)', 'conditional'],
    ['\\N{DASH}', 'named characters'],
    ['ab(?i)c', 'must be at the start'],
    ['(?i)a(?-i:b)', 'cannot be expressed'],
    ['\\q', 'bad escape'],
    ['(a', 'unterminated'],
    ['\\2(a)(b)', 'invalid group reference'],
  ])('refuses %s with a reason', (pattern, reason) => {
    expect(() => compilePythonRegex(pattern)).toThrow(PyRegexError);
    expect(() => compilePythonRegex(pattern)).toThrow(reason);
  });
});
