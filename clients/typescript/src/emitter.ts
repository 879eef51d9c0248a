/** The background sender of `emit`: a bounded buffer, batches, retries with the same ids. */

import { Backoff, send, retryable, sleep, type Transport } from "./http.js";

export const MAX_BATCH = 100;
/** Milliseconds to let a burst gather into one batch. */
const LINGER_MS = 50;

type Event = Record<string, unknown>;

export class Emitter {
  private queue: Event[] = [];
  private inflight: Event[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private wakeUp: (() => void) | null = null;
  closed = false;
  dropped = 0;
  refused = 0;
  sent = 0;

  constructor(
    private readonly t: Transport,
    private readonly limit: number,
  ) {}

  get empty(): boolean {
    return this.queue.length === 0 && this.inflight.length === 0;
  }

  /** Queue one event, dropping the oldest when the buffer is full; never waits. */
  put(event: Event): void {
    if (this.queue.length >= this.limit) {
      this.queue.shift();
      this.dropped += 1;
      if (this.dropped === 1 || this.dropped % 1000 === 0) {
        console.warn(
          `approvals: the service is unreachable and the event buffer is full (${this.limit} ` +
            `events); ${this.dropped} oldest events dropped so far`,
        );
      }
    }
    this.queue.push(event);
    this.start();
  }

  private start(): void {
    if (this.running) {
      this.wakeUp?.();
      return;
    }
    this.running = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff();
    await sleep(LINGER_MS);
    while (!this.empty) {
      if (!this.inflight.length) this.inflight = this.queue.splice(0, MAX_BATCH);
      if (await this.sendBatch(this.inflight)) {
        this.sent += this.inflight.length;
        this.inflight = [];
        backoff.reset();
      } else {
        // The service is away: wait (without keeping a Node process alive for it), or
        // until flush() asks for another try now.
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          sleep(backoff.next(), undefined, true).then(resolve);
        });
        this.wakeUp = null;
      }
    }
    this.running = false;
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  /** True when the batch is settled (stored, or refused for good); false to retry it. */
  private async sendBatch(batch: Event[]): Promise<boolean> {
    const outcome = await this.post(batch);
    if (outcome !== "split") return outcome === "done";
    for (const event of batch) {
      if ((await this.post([event])) === "retry") return false;
    }
    return true;
  }

  private async post(batch: Event[]): Promise<"done" | "retry" | "split"> {
    let response: Response;
    try {
      ({ response } = await send(this.t, { method: "POST", path: "/v1/events", body: batch }));
    } catch {
      return "retry";
    }
    if (response.status < 300) {
      await response.body?.cancel().catch(() => undefined);
      return "done";
    }
    const text = await response.text().catch(() => "");
    if (retryable(response.status)) return "retry";
    if (batch.length > 1) return "split";
    this.refused += 1;
    console.warn(`approvals: the service refused an event (${response.status}): ${text.slice(0, 300)}`);
    return "done";
  }

  /** Wait until everything queued so far is stored; false when some is left at `timeoutMs`. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    if (this.empty) return true;
    this.start();
    this.wakeUp?.();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([idle, late]);
    clearTimeout(timer);
    return result || this.empty;
  }
}
