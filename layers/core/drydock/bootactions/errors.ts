/**
 * Boot-action asset rendering errors, named after upstream's (`drydock_provisioner.error`).
 * They are not DomainErrors on purpose: on the tarball routes a render failure is a 500
 * (upstream-apis.md §1.6.3), on design validation it becomes a validation message; the caller
 * picks. Messages name the asset and segment but never carry rendered data or keys.
 */
export class BootActionAssetError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A pipeline names a segment we do not have (or one not allowed in `location_pipeline`). */
export class UnknownPipelineSegmentError extends BootActionAssetError {}

/** A segment failed: wrong input type, bad base64, invalid UTF-8, template error. */
export class PipelineFailureError extends BootActionAssetError {}

/** A `pkg_list` asset whose data is not a mapping of string → string|null. */
export class InvalidPackageListFormatError extends BootActionAssetError {}

/** The `location` of an asset could not be fetched. */
export class InvalidAssetLocationError extends BootActionAssetError {}

/** The asset itself is malformed (no path, bad permissions, neither data nor location). */
export class InvalidAssetError extends BootActionAssetError {}
