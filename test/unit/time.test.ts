import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../layers/core/errors.ts';
import { blazarDate, blazarTimestamp, parseBlazarDate, truncateToMinute } from '../../layers/core/util/time.ts';

const NOW = new Date('2030-01-06T09:15:42.123Z');

function rejection(value: unknown): ValidationError {
  try {
    parseBlazarDate(value, 'start_date', NOW);
  } catch (err) {
    return err as ValidationError;
  }
  throw new Error(`expected ${JSON.stringify(value)} to be rejected`);
}

describe('parseBlazarDate', () => {
  it('parses YYYY-MM-DD HH:MM as UTC', () => {
    expect(parseBlazarDate('2030-01-06 09:00', 'start_date', NOW).toISOString()).toBe('2030-01-06T09:00:00.000Z');
    expect(parseBlazarDate('2030-12-31 23:59', 'end_date', NOW).toISOString()).toBe('2030-12-31T23:59:00.000Z');
  });

  it('accepts non-padded month, day, hour and minute as strptime does', () => {
    expect(parseBlazarDate('2017-2-21 20:00', 'start_date', NOW).toISOString()).toBe('2017-02-21T20:00:00.000Z');
    expect(parseBlazarDate('2030-1-6 9:5', 'start_date', NOW).toISOString()).toBe('2030-01-06T09:05:00.000Z');
  });

  it('accepts 29 February in a leap year', () => {
    expect(parseBlazarDate('2028-02-29 00:00', 'start_date', NOW).toISOString()).toBe('2028-02-29T00:00:00.000Z');
  });

  it("turns 'now' into the current UTC time truncated to the minute", () => {
    expect(parseBlazarDate('now', 'start_date', NOW).toISOString()).toBe('2030-01-06T09:15:00.000Z');
  });

  it('does not mutate the clock value it is given for now', () => {
    const now = new Date(NOW);
    parseBlazarDate('now', 'start_date', now);
    expect(now.toISOString()).toBe('2030-01-06T09:15:42.123Z');
  });

  const invalid: [string, unknown][] = [
    ['30 February', '2030-02-30 10:00'],
    ['29 February in a common year', '2029-02-29 10:00'],
    ['31 April', '2030-04-31 10:00'],
    ['month 13', '2030-13-01 10:00'],
    ['month 0', '2030-00-10 10:00'],
    ['day 0', '2030-01-00 10:00'],
    ['hour 24', '2030-01-01 24:00'],
    ['minute 60', '2030-01-01 10:60'],
    ['seconds', '2030-01-06 09:00:00'],
    ['a T separator', '2030-01-06T09:00'],
    ['a Z zone', '2030-01-06 09:00Z'],
    ['an offset zone', '2030-01-06 09:00+02:00'],
    ['a full ISO timestamp', '2030-01-06T09:00:00.000Z'],
    ['a date without time', '2030-01-06'],
    ['a two-digit year', '30-01-06 09:00'],
    ['slashes', '2030/01/06 09:00'],
    ['an empty string', ''],
    ["'NOW' in capitals", 'NOW'],
    ['a number', 1893920400000],
    ['null', null],
    ['a Date object', new Date('2030-01-06T09:00:00Z')],
  ];
  for (const [what, value] of invalid) {
    it(`rejects ${what} with 400 and the required format`, () => {
      const err = rejection(value);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.statusCode).toBe(400);
      expect(err.message).toContain('is an invalid date');
      expect(err.message).toContain('Required format: %Y-%m-%d %H:%M');
    });
  }

  it('names the offending field in the error', () => {
    expect(rejection('2030-02-30 10:00').message).toContain('start_date');
  });
});

describe('truncateToMinute', () => {
  it('drops seconds and milliseconds', () => {
    expect(truncateToMinute(new Date('2030-01-06T09:15:59.999Z')).toISOString()).toBe('2030-01-06T09:15:00.000Z');
    expect(truncateToMinute(new Date('2030-01-06T09:15:00.000Z')).toISOString()).toBe('2030-01-06T09:15:00.000Z');
  });
});

describe('blazarDate', () => {
  it('formats as %Y-%m-%dT%H:%M:%S.%f with six fractional digits', () => {
    expect(blazarDate('2030-01-06T09:00:00.000Z')).toBe('2030-01-06T09:00:00.000000');
  });

  it('keeps milliseconds as the first three of the six fractional digits', () => {
    expect(blazarDate('2030-01-06T09:00:05.123Z')).toBe('2030-01-06T09:00:05.123000');
    expect(blazarDate('2030-01-06T09:00:05.007Z')).toBe('2030-01-06T09:00:05.007000');
  });

  it('zero-pads month, day, hour, minute and second', () => {
    expect(blazarDate(new Date(Date.UTC(2031, 1, 3, 4, 5, 6)))).toBe('2031-02-03T04:05:06.000000');
  });

  it('formats in UTC whatever offset the input carries', () => {
    expect(blazarDate('2030-01-06T11:00:00+02:00')).toBe('2030-01-06T09:00:00.000000');
  });

  it('round-trips a parsed Blazar date', () => {
    expect(blazarDate(parseBlazarDate('2030-1-6 9:00', 'start_date', NOW))).toBe('2030-01-06T09:00:00.000000');
  });
});

describe('blazarTimestamp', () => {
  it('formats as %Y-%m-%d %H:%M:%S without fraction', () => {
    expect(blazarTimestamp('2029-12-20T10:00:05.999Z')).toBe('2029-12-20 10:00:05');
    expect(blazarTimestamp('2031-02-03T04:05:06.000Z')).toBe('2031-02-03 04:05:06');
  });

  it('answers null for a missing timestamp', () => {
    expect(blazarTimestamp(null)).toBeNull();
    expect(blazarTimestamp(undefined)).toBeNull();
    expect(blazarTimestamp('')).toBeNull();
  });
});
