import { EncfsError } from '../errors/encfs-error.js'

export class StorageError extends EncfsError {}

// The redaction helper lives in log/redact.ts; re-exported for blob-source.ts and mount-filesystem.ts
// until they import it from there (kept while the data-path work on those files is merged).
export { redactUrl } from '../log/redact.js'
