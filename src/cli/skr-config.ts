import type { Logger } from '../log/logger.js'
import { loadSkrConfig } from '../config/load.js'
import type { SkrConfig } from '../config/validate.js'

/** The skr configuration (SkrSideCarArgs, AaspSideCarArgs, -base64) from `source`, its warnings logged. */
export function skrConfigOf(text: string, source: string, logger: Logger): SkrConfig {
  const { config, warnings } = loadSkrConfig(text, source)
  for (const w of warnings) logger.warn({ path: w.path }, `${source} ${w.path}: ${w.message}`)
  return config
}
