import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

/**
 * A modal dialog on the native <dialog>: showModal() makes the page behind it inert, moves focus
 * into it and closes on Esc (the `cancel` event) without any code of ours, and gives it
 * role=dialog with aria-modal. Focus goes back to what opened it when it closes.
 */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const d = ref.current!;
    if (!d.open) d.showModal();
    return () => opener?.focus?.();
  }, []);
  const id = `dlg-${props.title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <dialog
      ref={ref}
      class={props.wide ? 'wide' : undefined}
      aria-labelledby={id}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <header class="dlg-head">
        <h2 id={id}>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </header>
      {props.children}
    </dialog>
  );
}

/** An API error, said plainly and announced to screen readers. */
export function ErrorBanner(props: { error: string | undefined; onDismiss?: () => void }) {
  if (!props.error) return null;
  return (
    <div class="error" role="alert">
      <span>{props.error}</span>
      {props.onDismiss && (
        <button type="button" class="icon" aria-label="Dismiss error" onClick={props.onDismiss}>
          ×
        </button>
      )}
    </div>
  );
}

export const POLL_MS = 10_000;

/**
 * Loads now and then every POLL_MS while the tab is visible; a hidden tab stops polling and
 * catches up as soon as it is shown again. The last good data stays on screen after an error.
 */
export function usePoll<T>(load: () => Promise<T>, key: string) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [at, setAt] = useState<number | undefined>(undefined);
  const loadRef = useRef(load);
  loadRef.current = load;
  const seq = useRef(0);
  const run = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const d = await loadRef.current();
      if (mine !== seq.current) return;
      setData(d);
      setError(undefined);
      setAt(Date.now());
    } catch (e) {
      if (mine === seq.current) setError(e instanceof Error ? e.message : String(e));
    }
  }, []);
  useEffect(() => {
    setData(undefined);
    let timer: ReturnType<typeof setInterval> | undefined;
    const start = () => {
      clearInterval(timer);
      timer = setInterval(() => void run(), POLL_MS);
    };
    const onVisibility = () => {
      if (document.hidden) clearInterval(timer);
      else {
        void run();
        start();
      }
    };
    void run();
    if (!document.hidden) start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      seq.current++;
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [key, run]);
  return { data, error, at, reload: run };
}

/** A stable colour for a project: its hue from a hash of the name (the same in every session). */
export function projectHue(project: string): number {
  let h = 2166136261;
  for (let i = 0; i < project.length; i++) h = Math.imul(h ^ project.charCodeAt(i), 16777619);
  return (h >>> 0) % 360;
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint && <small>{props.hint}</small>}
    </label>
  );
}
