/** Statistics and table printing shared by the bench modules (side-effect free, so each module can import it). */

/** The highest of a side's runs (ops/s). */
export const best = (list: ReadonlyArray<number>): number => Math.max(...list)

/** The median of a side's runs (ops/s). */
export const median = (list: ReadonlyArray<number>): number => {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * Prints `rows` under `header` in aligned columns, two spaces apart, with a dashed rule under the header: the
 * columns `leftAligned` says (default the first two: workload and backend) padded on the right, numbers on the left.
 */
export const printTable = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  leftAligned: (column: number) => boolean = (column) => column < 2
): void => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (leftAligned(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  console.log(line(header))
  console.log(widths.map((w) => "-".repeat(w)).join("  "))
  for (const row of rows) console.log(line(row))
}
