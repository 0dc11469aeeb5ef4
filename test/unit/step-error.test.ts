import { describe, expect, it } from 'vitest';
import { causeText } from '../../layers/core/util/step-error.ts';

describe('causeText', () => {
  it("keeps a Lambda error's message, never its stack", () => {
    const cause = JSON.stringify({ errorType: 'ConcurrentModificationError', errorMessage: 'Node n1 was modified concurrently', trace: ['at x (file.js:1:1)'] });
    expect(causeText({ Error: 'ConcurrentModificationError', Cause: cause }, 'fallback')).toBe('Node n1 was modified concurrently');
  });

  it("keeps a plain cause (an agent's SendTaskFailure) as it is", () => {
    expect(causeText({ Error: 'AgentJobFailed', Cause: 'erasing /dev/sda failed: {"x": 1}' }, 'fallback')).toBe('erasing /dev/sda failed: {"x": 1}');
    expect(causeText({ Error: 'AgentJobFailed', Cause: '{"not":"a lambda error"}' }, 'fallback')).toBe('{"not":"a lambda error"}');
  });

  it('falls back to the error name, then to the given text', () => {
    expect(causeText({ Error: 'States.Timeout' }, 'fallback')).toBe('States.Timeout');
    expect(causeText({}, 'fallback')).toBe('fallback');
  });
});
