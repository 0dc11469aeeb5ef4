/**
 * API Gateway route templates (`/v1/leases/{lease_id}`, `/v1/{proxy+}`) compiled to matchers.
 * The local server uses this to pick a route exactly as API Gateway does (most literal segments
 * first, greedy `{proxy+}` last); surfaces use it to tell 404 from 405.
 */
export interface CompiledTemplate {
  template: string;
  /** Higher is more specific. */
  specificity: number;
  match(path: string): Record<string, string> | undefined;
}

export function compileTemplate(template: string): CompiledTemplate {
  const names: string[] = [];
  let literals = 0;
  let greedy = false;
  const pattern = template
    .split('/')
    .map((seg) => {
      const m = /^\{([A-Za-z0-9_]+)(\+?)\}$/.exec(seg);
      if (!m) {
        if (seg !== '') literals++;
        return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      }
      names.push(m[1]!);
      if (m[2]) {
        greedy = true;
        return '(.+)';
      }
      return '([^/]+)';
    })
    .join('/');
  const re = new RegExp(`^${pattern}$`);
  return {
    template,
    // A full match always beats a greedy one (API Gateway); then more literal segments win.
    specificity: (greedy ? 0 : 10_000) + literals * 100 + (template.split('/').length - names.length),
    match(path: string) {
      const m = re.exec(path);
      if (!m) return undefined;
      const out: Record<string, string> = {};
      names.forEach((n, i) => {
        const v = m[i + 1]!;
        try {
          out[n] = decodeURIComponent(v);
        } catch {
          out[n] = v;
        }
      });
      return out;
    },
  };
}
