import { isAdmin, type Principal } from '../identity/identity.ts';
import type { BmcInfo, Node } from '../inventory/node.ts';

/**
 * What a node shows to someone who is not an administrator (issue "tenants cannot harm the
 * site"). A lessee operates its node through the API — power, boot device, provision verbs —
 * and never needs to reach its BMC itself: the BMC's address and user name would let it try
 * (the password is never shown to anyone). Upstream does the same with its
 * `baremetal:node:get:driver_info` policy, which lessees do not hold by default: the whole
 * driver_info becomes one `content` note. Errors the agent reported may name the BMC (a refused
 * connection to its address), so a non-admin sees them with the BMC's identifiers masked.
 */
export const REDACTED_DRIVER_INFO = Object.freeze({ content: '** Redacted - requires baremetal:node:get:driver_info permission. **' });

/** The mask upstream uses for secrets, used here for the BMC's identifiers in error texts. */
const MASK = '******';

/** driver_info keys whose values identify the BMC or its account (ports and flags do not). */
const IDENTIFYING = /(^|_)(address|username|system_id)$|^credential_ref$/;

/** The strings of a BMC's driver_info that identify it: values, and for addresses their host parts. */
function identifiers(bmc: BmcInfo): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(bmc.driver_info)) {
    if (!IDENTIFYING.test(k) || (typeof v !== 'string' && typeof v !== 'number')) continue;
    const s = String(v);
    // A one- or two-character value (a user "u") would mask half of every sentence.
    if (s.length >= 3) out.add(s);
    if (k.endsWith('address')) {
      try {
        const url = new URL(s.includes('://') ? s : `http://${s}`);
        for (const part of [url.host, url.hostname, url.hostname.replace(/^\[|\]$/g, '')]) if (part.length >= 3) out.add(part);
      } catch {
        // not a URL or host name: the value itself is masked
      }
    }
  }
  // Longest first, so that a URL is masked whole before its host is.
  return [...out].sort((a, b) => b.length - a.length);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `text` with every identifier of the BMC (whole words only) replaced by `******`. */
export function scrubBmc(text: string, bmc: BmcInfo | undefined): string {
  if (!bmc) return text;
  let out = text;
  for (const id of identifiers(bmc)) out = out.replace(new RegExp(`(?<![A-Za-z0-9])${escape(id)}(?![A-Za-z0-9])`, 'g'), MASK);
  return out;
}

/** An error text about a node's BMC as `who` may read it. */
export const bmcErrorFor = (who: Principal, bmc: BmcInfo | undefined, text: string): string => (isAdmin(who) ? text : scrubBmc(text, bmc));

/**
 * The node as `who` may see it: unchanged for administrators; for everyone else driver_info
 * redacted and `last_error` without the BMC's identifiers. Views render what this returns.
 */
export function nodeFor(who: Principal | undefined, node: Node): Node {
  if (!node.bmc || (who && isAdmin(who))) return node;
  return {
    ...node,
    bmc: {
      ...node.bmc,
      driver_info: { ...REDACTED_DRIVER_INFO },
      last_error: node.bmc.last_error === null ? null : scrubBmc(node.bmc.last_error, node.bmc),
    },
  };
}
