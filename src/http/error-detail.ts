/**
 * What an Azure service says in a refusal: Key Vault, Managed HSM and MAA answer
 * `{"error": {"code", "message"}}`; anything else is quoted as it came, cut at `max` characters.
 */
export function serviceErrorDetail(text: string, max = 500): string {
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error
    if (e && typeof e === 'object') return `${e.code ?? ''}: ${e.message ?? ''}`
  } catch {
    /* not JSON: the text itself */
  }
  return text.slice(0, max)
}
