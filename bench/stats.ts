/** Statistics shared by the bench modules (side-effect free, so each module can import it). */

/** The highest of a side's runs (ops/s). */
export const best = (list: ReadonlyArray<number>): number => Math.max(...list)

/** The median of a side's runs (ops/s). */
export const median = (list: ReadonlyArray<number>): number => {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
