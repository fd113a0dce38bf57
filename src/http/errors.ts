import { EncfsError } from '../errors/encfs-error.js'

export class HttpError extends EncfsError {
  constructor(code: string, message: string, readonly status?: number, readonly body?: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}
