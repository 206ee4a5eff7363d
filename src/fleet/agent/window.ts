// Reboot windows: "reboot only between 02:00 and 05:00 on weeknights, Paris
// time". Pure: the clock is a parameter. A window whose end is before its
// start runs past midnight and belongs to the day it starts on.

import { StrataError } from '../../errors.js';
import type { RebootWindow } from './device-client.js';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
type Day = (typeof DAYS)[number];

function minutes(hhmm: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m || Number(m[1]) > 24 || Number(m[2]) > 59 || (Number(m[1]) === 24 && m[2] !== '00')) {
    throw new StrataError('USAGE', `'${hhmm}' is not a time of day; use HH:MM (00:00 to 24:00)`, { time: hhmm });
  }
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Day of week and minute of day of `now` in the window's time zone (UTC when it names none). */
function localTime(nowMs: number, timeZone: string | undefined): { day: Day; minute: number } {
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat('en-US', { timeZone: timeZone ?? 'UTC', weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(nowMs));
  } catch {
    throw new StrataError('USAGE', `unknown time zone '${timeZone}'; use an IANA name such as Europe/Paris`, { timeZone });
  }
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return { day: get('weekday').toLowerCase().slice(0, 3) as Day, minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** Whether `nowMs` falls inside the window. */
export function inWindow(w: RebootWindow, nowMs: number): boolean {
  const start = minutes(w.start);
  const end = minutes(w.end);
  const { day, minute } = localTime(nowMs, w.timeZone);
  const days = new Set<string>(w.days?.length ? w.days : DAYS);
  if (start === end) return days.has(day);
  if (start < end) return days.has(day) && minute >= start && minute < end;
  const yesterday = DAYS[(DAYS.indexOf(day) + 6) % 7];
  return (days.has(day) && minute >= start) || (days.has(yesterday) && minute < end);
}

/**
 * Reads `--window "mon,tue,wed 02:00-05:00 Europe/Paris"`: days (optional,
 * default every day), a time range, a time zone (optional, default UTC).
 */
export function parseWindow(text: string): RebootWindow {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const rangeAt = words.findIndex((w) => /^\d{2}:\d{2}-\d{2}:\d{2}$/.test(w));
  const bad = (why: string) => new StrataError('USAGE', `--window '${text}': ${why}; write it like "mon,tue,wed,thu,fri 02:00-05:00 Europe/Paris"`, { window: text });
  if (rangeAt < 0) throw bad('no HH:MM-HH:MM range');
  if (rangeAt > 1 || words.length > rangeAt + 2) throw bad('too many words');
  const [start, end] = words[rangeAt].split('-');
  minutes(start);
  minutes(end);
  const w: RebootWindow = { start, end };
  if (rangeAt === 1) {
    const days = words[0].toLowerCase().split(',');
    for (const d of days) if (!(DAYS as readonly string[]).includes(d)) throw bad(`'${d}' is not a day (mon, tue, wed, thu, fri, sat, sun)`);
    w.days = days as RebootWindow['days'];
  }
  if (words[rangeAt + 1]) {
    w.timeZone = words[rangeAt + 1];
    localTime(0, w.timeZone);
  }
  return w;
}
