import type { Ports } from '../ports.ts';
import type { Principal } from './identity.ts';
import { verifySecret } from './passwords.ts';

/**
 * A user's name and password as Commissaire's `Basic` credentials (upstream's htpasswd backend,
 * issue 15) → the principal it acts as, or undefined. Only the surfaces that take passwords hand
 * this to their surface (`basicUsers`), so no other bundle carries it or reads users.
 */
export async function principalByPassword(deps: Pick<Ports, 'users'>, user: string, password: string): Promise<Principal | undefined> {
  if (Buffer.byteLength(user) > 255 || Buffer.byteLength(password) > 4096) return undefined;
  const found = await deps.users.getByName(user);
  // An unknown user costs the same hash as a known one (verifySecret without a hash).
  if (!(await verifySecret(password, found?.password_hash)) || !found) return undefined;
  return { token_id: `user-${found.id.slice(0, 11)}`, project_id: found.project_id, user_id: found.id, roles: found.roles };
}
