// The Redis revocation bus across a lost connection: it subscribes again, tells its listeners that
// messages may have been missed, and closing it while it subscribes again never crashes the process
// (ioredis's own resubscription has no rejection handler: an unhandled rejection ends Node).
import assert from "node:assert/strict";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { Redis } from "ioredis";
import { REDIS_URL, redisReachable } from "../../test/helpers.js";
import { RedisRevocationBus } from "./revocation.js";

/**
 * A TCP proxy in front of the test Redis that can cut every connection, refuse new ones, and swallow
 * SUBSCRIBE commands so a subscription stays in flight for as long as the test wants.
 */
async function redisProxy(): Promise<{
  url: string;
  cut(): void;
  refuse: boolean;
  swallowSubscribe: boolean;
  close(): Promise<void>;
}> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  const state = { refuse: false, swallowSubscribe: false };
  const server = createServer((client) => {
    if (state.refuse) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (chunk: Buffer) => {
      if (state.swallowSubscribe && /subscribe/i.test(chunk.toString("latin1"))) return;
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut: () => sockets.forEach((socket) => socket.destroy()),
    get refuse() {
      return state.refuse;
    },
    set refuse(on: boolean) {
      state.refuse = on;
    },
    get swallowSubscribe() {
      return state.swallowSubscribe;
    },
    set swallowSubscribe(on: boolean) {
      state.swallowSubscribe = on;
    },
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("Redis revocation bus across a lost connection", async () => {
  const skip = !(await redisReachable()) && "Redis unreachable";

  it("subscribes again and hears revocations published after the reconnect", { skip }, async () => {
    const proxy = await redisProxy();
    const channel = `aw:test:revocations:reconnect:${process.pid}`;
    const bus = new RedisRevocationBus({ url: proxy.url, channel });
    let notices = 0;
    let reconnected!: () => void;
    const reconnect = new Promise<void>((resolve) => (reconnected = resolve));
    bus.onRevocation(() => {
      notices++;
      reconnected();
    });
    const publisher = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      await bus.ready();
      proxy.cut();
      await reconnect;
      const before = notices;
      // The reconnect notice comes on "ready"; the subscription follows it within a round trip.
      for (let i = 0; i < 100 && notices === before; i++) {
        await publisher.publish(channel, "key:test");
        await sleep(20);
      }
      assert.ok(notices > before, "a revocation published after the reconnect reached the bus");
    } finally {
      publisher.disconnect();
      await bus.close();
      await proxy.close();
    }
  });

  it("subscribes once Redis answers when it was unreachable at start", { skip }, async () => {
    const proxy = await redisProxy();
    proxy.refuse = true;
    const channel = `aw:test:revocations:late:${process.pid}`;
    const bus = new RedisRevocationBus({ url: proxy.url, channel });
    let notices = 0;
    bus.onRevocation(() => notices++);
    const publisher = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      // Long enough for ioredis to give up on the commands it queued (maxRetriesPerRequest).
      await sleep(400);
      proxy.refuse = false;
      for (let i = 0; i < 150 && notices === 0; i++) {
        await publisher.publish(channel, "key:test");
        await sleep(20);
      }
      assert.ok(notices > 0, "a revocation published once Redis answered reached the bus");
    } finally {
      publisher.disconnect();
      await bus.close();
      await proxy.close();
    }
  });

  it("closing the bus while it subscribes again is not an unhandled rejection", { skip }, async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    const proxy = await redisProxy();
    try {
      const bus = new RedisRevocationBus({ url: proxy.url });
      await bus.ready();
      // The next SUBSCRIBE never reaches Redis: it is in flight when the bus closes.
      proxy.swallowSubscribe = true;
      const closed = new Promise<void>((resolve) =>
        bus.onRevocation(() => {
          setTimeout(() => void bus.close().then(resolve), 50);
        }),
      );
      proxy.cut();
      await closed;
      await sleep(200);
      assert.deepEqual(
        unhandled.map((reason) => String(reason)),
        [],
      );
    } finally {
      process.off("unhandledRejection", record);
      await proxy.close();
    }
  });
});
