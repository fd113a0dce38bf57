import { EncfsError } from '../errors.js'

export class StorageError extends EncfsError {}

// One redaction helper for the whole project (URLs with a SAS or user:password).
export { redactUrl } from '../log/redact.js'
