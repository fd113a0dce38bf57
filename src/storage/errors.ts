import { EncfsError } from '../errors.js'

export class StorageError extends EncfsError {}

/** A URL as it may appear in a log line or message: the SAS query (a bearer secret) removed. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  return q < 0 ? url : `${url.slice(0, q)}?[sas redacted]`
}
