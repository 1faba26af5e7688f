/**
 * Child processes of the multi-process tests (`node --import tsx <script>`),
 * which say why they failed: when a child exits badly or stalls past its
 * deadline, the error gives its label, the elapsed time, what was awaited,
 * its exit status and its last output lines, instead of an empty timeout.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"

/** How a child ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** How many of a child's last output lines a failure report shows. */
const tailLines = 20

/** A running child with its stdout as lines and its whole output (stdout and stderr, interleaved) kept. */
export class Child {
  readonly process: ChildProcessWithoutNullStreams
  /** Its stdout lines so far. */
  readonly lines: Array<string> = []
  /** When each stdout line arrived (`performance.now()`). */
  readonly times: Array<number> = []
  /** Its stderr so far. */
  stderr = ""
  readonly exited: Promise<Exit>
  private readonly output: Array<string> = []
  private readonly started = performance.now()
  private waiters: Array<() => void> = []

  constructor(
    readonly label: string,
    script: string,
    args: ReadonlyArray<string>,
    options: { readonly cwd?: string } = {}
  ) {
    this.process = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      env: process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd })
    })
    /** Calls `onLine` for each complete line of `stream`, and for its unterminated last line when it ends. */
    const byLine = (stream: NodeJS.ReadableStream, onLine: (line: string) => void) => {
      let partial = ""
      stream.setEncoding("utf8")
      stream.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n")
        partial = parts.pop()!
        for (const line of parts) onLine(line)
        for (const wake of this.waiters.splice(0)) wake()
      })
      stream.on("end", () => {
        if (partial !== "") onLine(partial)
      })
    }
    byLine(this.process.stdout, (line) => {
      this.lines.push(line)
      this.times.push(performance.now())
      this.output.push(line)
    })
    byLine(this.process.stderr, (line) => {
      this.stderr += `${line}\n`
      this.output.push(`[stderr] ${line}`)
    })
    this.exited = new Promise((resolve) => {
      this.process.on("close", (code, signal) => {
        for (const wake of this.waiters.splice(0)) wake()
        resolve({ code, signal })
      })
    })
  }

  /** Whether the process has not exited yet. */
  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null
  }

  /** Milliseconds since it was spawned. */
  get elapsed(): number {
    return Math.round(performance.now() - this.started)
  }

  /** A failure report: label, what happened, elapsed time, exit status and the last output lines. */
  report(what: string): string {
    const status = this.running
      ? "still running"
      : `exited with ${this.process.signalCode ?? `code ${this.process.exitCode}`}`
    const tail = this.output.slice(-tailLines)
    const shown =
      tail.length === 0
        ? "no output"
        : `last ${tail.length} of ${this.output.length} output lines:\n  ${tail.join("\n  ")}`
    return `${this.label} (pid ${this.process.pid}) ${what} after ${this.elapsed} ms, ${status}; ${shown}`
  }

  /** Resolves once a stdout line satisfies `predicate`; rejects with a report on exit or after `timeoutMs`. */
  async waitFor(
    predicate: (line: string) => boolean,
    timeoutMs: number,
    awaited = "the expected line"
  ): Promise<string> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const found = this.lines.find(predicate)
      if (found !== undefined) return found
      if (!this.running) throw new Error(this.report(`ended before printing ${awaited}`))
      const left = deadline - performance.now()
      if (left <= 0) throw new Error(this.report(`printed no ${awaited} within ${timeoutMs} ms`))
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** When stdout line `line` arrived. */
  timeOf(line: string): number {
    return this.times[this.lines.indexOf(line)]!
  }

  /** Kills it (SIGKILL) if it runs; resolves when it has ended. */
  kill(): Promise<Exit> {
    if (this.running) this.process.kill("SIGKILL")
    return this.exited
  }

  /**
   * Resolves with its stdout once it exits with code 0; rejects with a report when it exits otherwise or has
   * not exited within `timeoutMs` (then it is killed).
   */
  async done(timeoutMs: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined
    const stalled = new Promise<"stalled">((resolve) => (timer = setTimeout(() => resolve("stalled"), timeoutMs)))
    const outcome = await Promise.race([this.exited, stalled]).finally(() => clearTimeout(timer))
    if (outcome === "stalled") {
      const report = this.report(`did not exit within ${timeoutMs} ms`)
      await this.kill()
      throw new Error(report)
    }
    if (outcome.code !== 0) throw new Error(this.report("failed"))
    return this.lines.join("\n")
  }
}
