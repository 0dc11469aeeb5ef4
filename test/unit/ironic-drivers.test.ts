import { describe, expect, it } from 'vitest';
import { DRIVER_PROPERTIES, DRIVERS } from '../../layers/core/ironic/nodes.ts';

/** `baremetal driver property list` must name exactly the driver_info keys a driver takes. */
describe('Ironic driver properties', () => {
  it.each(Object.keys(DRIVERS) as (keyof typeof DRIVERS)[])('%s: one description per driver_info key, each marked Required or Optional', (driver) => {
    expect(Object.keys(DRIVER_PROPERTIES[driver]).sort()).toEqual(Object.keys(DRIVERS[driver].shape).sort());
    for (const text of Object.values(DRIVER_PROPERTIES[driver])) expect(text).toMatch(/(Required|required unless credential_ref is set|Optional)\.$/);
  });
});
