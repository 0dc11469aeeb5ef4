/**
 * A Step Functions error as a catch hands it to the next state: `Error` is the error name
 * (a Lambda's errorType, or `States.*`), `Cause` its text. A Lambda function's Cause is the JSON
 * `{errorType, errorMessage, trace}` its runtime wrote; an agent's SendTaskFailure cause is plain.
 */
export interface StepError {
  Error?: string;
  Cause?: string;
}

/** The readable part of a Cause: a Lambda error's message (never its stack), else the text as given. */
export function causeText(err: StepError, fallback: string): string {
  try {
    const parsed = JSON.parse(err.Cause ?? '') as { errorMessage?: unknown };
    if (parsed && typeof parsed.errorMessage === 'string' && parsed.errorMessage) return parsed.errorMessage;
  } catch {
    // not JSON: a plain cause
  }
  return err.Cause || err.Error || fallback;
}
