/**
 * A throwaway PostgreSQL cluster for the fault tests: `initdb` in a temporary
 * directory and `pg_ctl` on a port of its own (never the shared server), run
 * as the `postgres` OS user when the tests run as root. It can be stopped,
 * killed, frozen and thawed, restarted, have its client connections
 * terminated or a role's new connections refused; `destroy` stops whatever runs (thawing it first)
 * and removes the directory, also after a failure.
 */
import { execFileSync, type ExecFileSyncOptionsWithStringEncoding } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"

/** The ports the fault tests may use (a range kept free of other clusters on the test machines). */
const ports = [55432, 55433, 55434, 55435, 55436, 55437, 55438, 55439]

/** The directory of the newest installed PostgreSQL's binaries (Debian's layout), or of those on `PATH`. */
export const findBinaries = (): string | undefined => {
  const root = "/usr/lib/postgresql"
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((name) => existsSync(join(root, name, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a))
    if (versions.length > 0) return join(root, versions[0]!, "bin")
  }
  try {
    return execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim()
  } catch {
    return undefined
  }
}

/** Whether nothing listens on `port` at 127.0.0.1. */
const isFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = Net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** The pids of `pid`'s children (from `/proc`). */
const childrenOf = (pid: number): Array<number> =>
  readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        // The parent pid is the second field after the command, which is in parentheses and may hold spaces.
        const stat = readFileSync(`/proc/${name}/stat`, "utf8")
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid ? [Number(name)] : []
      } catch {
        return []
      }
    })

/** Options running a command in `cwd` whose output (stderr too) is captured: a failure's error carries it. */
const quiet = (cwd: string): ExecFileSyncOptionsWithStringEncoding => ({
  encoding: "utf8",
  cwd,
  stdio: ["ignore", "pipe", "pipe"]
})

/** A throwaway cluster. */
export class Cluster {
  private frozen: Array<number> = []

  private constructor(
    readonly bin: string,
    readonly dir: string,
    readonly port: number,
    /** Runs a command as the cluster's OS user. */
    private readonly asOwner: (command: string, args: ReadonlyArray<string>) => string
  ) {}

  /** Creates and starts a cluster on the first free port of the range, with `settings` in its configuration. */
  static async create(bin: string, settings: Readonly<Record<string, string | number>>): Promise<Cluster> {
    let port: number | undefined
    for (const candidate of ports) if (port === undefined && (await isFree(candidate))) port = candidate
    if (port === undefined) throw new Error(`no free port in ${ports[0]}–${ports[ports.length - 1]}`)
    const dir = mkdtempSync(join(tmpdir(), "agent-stores-cluster-"))
    const root = process.getuid?.() === 0
    if (root) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), 0)
    const asOwner = (command: string, args: ReadonlyArray<string>) =>
      root
        ? execFileSync("runuser", ["-u", "postgres", "--", command, ...args], quiet(dir))
        : execFileSync(command, args, quiet(dir))
    const cluster = new Cluster(bin, dir, port, asOwner)
    asOwner(join(bin, "initdb"), ["-D", cluster.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
    const conf = {
      port,
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${dir}'`,
      ...settings
    }
    writeFileSync(
      join(cluster.data, "postgresql.auto.conf"),
      Object.entries(conf)
        .map(([key, value]) => `${key} = ${value}\n`)
        .join("")
    )
    if (root) execFileSync("chown", ["postgres", join(cluster.data, "postgresql.auto.conf")])
    cluster.start()
    return cluster
  }

  get data(): string {
    return join(this.dir, "data")
  }

  /** The URL of its `postgres` database. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  private pgCtl(...args: ReadonlyArray<string>): string {
    return this.asOwner(join(this.bin, "pg_ctl"), ["-D", this.data, "-l", join(this.dir, "log"), ...args])
  }

  /** The postmaster's pid while it runs. */
  get pid(): number | undefined {
    const file = join(this.data, "postmaster.pid")
    if (!existsSync(file)) return undefined
    const pid = Number(readFileSync(file, "utf8").split("\n")[0])
    try {
      process.kill(pid, 0)
      return pid
    } catch {
      return undefined
    }
  }

  /** Starts it and waits until it accepts connections. */
  start(): void {
    this.pgCtl("-w", "-t", "60", "start")
  }

  /** Stops it (`mode`: `fast` rolls back and disconnects clients; `immediate` aborts). */
  stop(mode: "fast" | "immediate" = "fast"): void {
    this.pgCtl("-w", "-m", mode, "stop")
  }

  /** Restarts it (`-m fast`). */
  restart(): void {
    this.pgCtl("-w", "-t", "60", "-m", "fast", "restart")
  }

  /** Kills the postmaster with SIGKILL; its backends exit when they notice, and a `start` recovers from the WAL. */
  kill(): void {
    const pid = this.pid
    if (pid !== undefined) process.kill(pid, "SIGKILL")
  }

  /** Freezes the postmaster and every process of the server with SIGSTOP: connections stay open, nothing answers. */
  freeze(): void {
    const pid = this.pid
    if (pid === undefined) return
    process.kill(pid, "SIGSTOP")
    this.frozen = [pid, ...childrenOf(pid)]
    for (const child of this.frozen.slice(1)) process.kill(child, "SIGSTOP")
  }

  /** Resumes what `freeze` stopped. */
  thaw(): void {
    for (const pid of this.frozen.reverse()) {
      try {
        process.kill(pid, "SIGCONT")
      } catch {
        // gone meanwhile
      }
    }
    this.frozen = []
  }

  /** A connection of the test's own (superuser) to the cluster, for setup and inspection. */
  admin(): postgres.Sql {
    return postgres(this.url, { max: 1, onnotice: () => {} })
  }

  /** Terminates every backend of `role` (`pg_terminate_backend`); how many. */
  async terminate(role: string): Promise<number> {
    const sql = this.admin()
    try {
      const rows = await sql<Array<{ n: number }>>`
        SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE usename = ${role}`
      return rows[0]!.n
    } finally {
      await sql.end({ timeout: 1 })
    }
  }

  /**
   * Refuses every new connection of `role` (a connection limit of 0: the server answers each with FATAL 53300, as
   * at `max_connections`) and terminates its open ones; returns the undo.
   */
  async refuse(role: string): Promise<() => Promise<void>> {
    const sql = this.admin()
    try {
      await sql.unsafe(`ALTER ROLE "${role}" CONNECTION LIMIT 0`)
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${role}`
    } finally {
      await sql.end({ timeout: 1 })
    }
    return async () => {
      const sql = this.admin()
      try {
        await sql.unsafe(`ALTER ROLE "${role}" CONNECTION LIMIT -1`)
      } finally {
        await sql.end({ timeout: 1 })
      }
    }
  }

  /** Stops whatever runs (thawing it first) and removes the directory. */
  destroy(): void {
    this.thaw()
    try {
      if (this.pid !== undefined) this.stop("immediate")
    } catch {
      this.kill()
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}
