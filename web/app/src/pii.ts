// Cluster reasons are sentences written by the detector, and they quote identifier values:
// "2 accounts share 1 phone number (+4477…)". The API masks PII in every identifier field for
// keys without READ_PII, but not yet inside these sentences (docs/api.md: known gap). Until it
// does, the page masks them the way the API masks ids (all but the last two characters), so a
// risk engine's screen never shows a raw value. This is display only: the fix belongs in the API.
// The words are the PII kinds' names in ringscope/kinds.py, as the reasons print them.
import { can } from './auth';

const PII_WORDS = '(?:phone numbers?|IP address(?:es)?|email address(?:es)?|ID documents?|bank cards?)';
// "3 phone numbers (a, b, c and 2 more)"
const LISTED = new RegExp(`\\b(${PII_WORDS}) \\(([^)]*)\\)`, 'g');
// "; email address x@y.com holds the group together"
const NAMED = new RegExp(`\\b(${PII_WORDS}) (\\S+)(?= holds the group together)`, 'g');

function maskValue(v: string): string {
  const s = v.trim();
  if (s.startsWith('*') || s.startsWith('~')) return s; // already masked
  return '*'.repeat(Math.max(0, s.length - 2)) + s.slice(-2);
}

function maskList(list: string): string {
  return list
    .split(', ')
    .map((item) => {
      const m = /^(.*?)( and \d+ more)$/.exec(item);
      return m ? maskValue(m[1]!) + m[2]! : maskValue(item);
    })
    .join(', ');
}

/** The reason with every quoted PII value masked. */
export function maskReason(reason: string): string {
  return reason
    .replace(LISTED, (_all, words: string, list: string) => `${words} (${maskList(list)})`)
    .replace(NAMED, (_all, words: string, value: string) => `${words} ${maskValue(value)}`);
}

/** A reason as shown: PII values masked for keys that may not read them. */
export function shownReason(r: string): string {
  return can('READ_PII') ? r : maskReason(r);
}
