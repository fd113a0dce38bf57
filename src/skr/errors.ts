import { EncfsError } from '../errors.js'

export class SkrError extends EncfsError {}
