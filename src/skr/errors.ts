import { EncfsError } from '../errors/encfs-error.js'

export class SkrError extends EncfsError {}
