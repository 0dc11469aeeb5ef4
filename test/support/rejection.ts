import { expect } from 'vitest';

/** The error a promise rejects with, checked to be an instance of `kind` (a resolve fails the test). */
export async function rejection<E extends Error = Error>(p: Promise<unknown>, kind: abstract new (...args: never[]) => E = Error as never): Promise<E> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(kind);
  return err as E;
}
