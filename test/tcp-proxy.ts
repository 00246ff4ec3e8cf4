/**
 * A real TCP proxy in front of a service, for faults that cannot be made on a shared server:
 * block() drops every open connection and refuses new ones (the target "goes down"), unblock()
 * lets connections through again. `latencyMs` delays every chunk in both directions (a slow
 * target; order kept). Counts connection attempts.
 */
import net from 'node:net';

export class TcpProxy {
  private server?: net.Server;
  private readonly open = new Set<net.Socket>();
  blocked = false;
  attempts = 0;
  /** Delay of every chunk relayed (0: none). */
  latencyMs = 0;
  port = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {}

  async start(): Promise<number> {
    this.server = net.createServer((client) => {
      this.attempts++;
      if (this.blocked) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      this.open.add(client);
      this.open.add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.open.delete(client);
        this.open.delete(upstream);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      this.relay(client, upstream);
      this.relay(upstream, client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Copy `from` to `to`, delaying each chunk by latencyMs while it is set (chunks never overtake). */
  private relay(from: net.Socket, to: net.Socket): void {
    let pending = 0;
    let chain = Promise.resolve();
    from.on('data', (buf: Buffer) => {
      const delay = this.latencyMs;
      if (delay <= 0 && pending === 0) {
        if (!to.write(buf)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
        return;
      }
      pending++;
      chain = chain.then(() => new Promise<void>((r) => setTimeout(() => {
        if (!to.destroyed) to.write(buf);
        pending--;
        r();
      }, delay)));
    });
    from.on('end', () => void chain.then(() => to.end()));
  }

  block(): void {
    this.blocked = true;
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  unblock(): void {
    this.blocked = false;
  }

  async stop(): Promise<void> {
    this.block();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
