import type { Job } from '../agent/model.ts';
import type { BmcInfo } from '../inventory/node.ts';

/**
 * A BMC read came back (a verification, or Drydock's interrogation): the power state it saw, and
 * a verifying node's outcome — manageable, or back to enroll with the agent's error. A read does
 * not touch `target_power_state`: a power action may be in progress beside it.
 */
export function afterPowerRead(bmc: BmcInfo, job: Job, at: string): BmcInfo {
  const verifying = bmc.provision_state === 'verifying';
  const provision = verifying ? { target_provision_state: null, provision_updated_at: at } : {};
  if (job.status === 'succeeded') {
    const seen = (job.output as { power_state?: BmcInfo['power_state'] } | undefined)?.power_state;
    return { ...bmc, ...provision, power_state: seen ?? bmc.power_state, ...(verifying ? { provision_state: 'manageable', last_error: null } : {}) };
  }
  const error = job.error ?? 'reading the power state failed';
  return { ...bmc, ...provision, last_error: verifying ? `Failed to verify node ${bmc.driver} BMC credentials: ${error}` : error, ...(verifying ? { provision_state: 'enroll' } : {}) };
}
