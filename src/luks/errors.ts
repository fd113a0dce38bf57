import { EncfsError } from '../errors.js'

export class LuksError extends EncfsError {}
