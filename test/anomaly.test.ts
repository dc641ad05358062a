// Anomaly detection on a real store with a controlled clock: each rule fires, once per minute, and
// baselines survive a restart.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AnomalyDetector, RunningStats } from "../src/monitor/anomaly.js";
import { auditedStore } from "./helpers.js";

const { store, audit } = await auditedStore();
const MIN = 60_000;

function detector(clock: { t: number }, extra: { maxSubjects?: number } = {}) {
  return new AnomalyDetector({ store, audit, now: () => clock.t, ...extra });
}

describe("anomaly detection", () => {
  it("Welford statistics match the two-pass mean and deviation", () => {
    const xs = [4, 7, 13, 16, 5, 5, 9, 11];
    const s = new RunningStats();
    for (const x of xs) s.add(x);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
    assert.ok(Math.abs(s.mean - mean) < 1e-12 && Math.abs(s.std - sd) < 1e-12);
  });

  it("raises request_rate over 3 sigma once per minute, and the baseline survives a restart", async () => {
    const clock = { t: Date.UTC(2026, 0, 1) };
    let d = detector(clock);
    for (let m = 0; m < 15; m++) {
      for (let i = 0; i < 4 + (m % 3); i++) await d.observeRequest({ subject: "rate", ip: "10.0.0.1", status: 200 });
      clock.t += MIN;
    }
    for (let i = 0; i < 60; i++) await d.observeRequest({ subject: "rate", ip: "10.0.0.1", status: 200 });
    let alerts = (await d.list({ subject: "rate" })).filter((a) => a.kind === "request_rate");
    assert.equal(alerts.length, 1, "once per minute however many requests");
    await d.flush();
    // A restart: a new detector on the same database remembers the baseline.
    clock.t += MIN;
    d = detector(clock);
    for (let i = 0; i < 40; i++) await d.observeRequest({ subject: "rate", ip: "10.0.0.1", status: 200 });
    alerts = (await d.list({ subject: "rate" })).filter((a) => a.kind === "request_rate");
    assert.equal(alerts.length, 2);
    // A normal minute raises nothing.
    clock.t += MIN;
    for (let i = 0; i < 5; i++) await d.observeRequest({ subject: "rate", ip: "10.0.0.1", status: 200 });
    assert.equal((await d.list({ subject: "rate" })).filter((a) => a.kind === "request_rate").length, 2);
  });

  it("raises token_spike over 5x the mean, new_ip after 5 known, error_rate over 50 %", async () => {
    const clock = { t: Date.UTC(2026, 1, 1) };
    const d = detector(clock);
    for (let i = 0; i < 25; i++) await d.observeTokens({ subject: "tok", tokens: 90 + (i % 20) });
    await d.observeTokens({ subject: "tok", tokens: 400 });
    assert.equal((await d.list({ subject: "tok" })).length, 0, "4x is not a spike");
    await d.observeTokens({ subject: "tok", tokens: 900, credentialId: "key:k1" });
    const spike = (await d.list({ subject: "tok" }))[0];
    assert.equal(spike?.kind, "token_spike");
    assert.equal(spike?.details.credential, "key:k1");

    for (let i = 1; i <= 6; i++) await d.observeRequest({ subject: "ips", ip: `192.0.2.${i}`, status: 200 });
    assert.equal((await d.list({ subject: "ips" })).length, 0, "six addresses are learnt silently");
    await d.observeRequest({ subject: "ips", ip: "198.51.100.7", status: 200 });
    assert.equal((await d.list({ subject: "ips" }))[0]?.kind, "new_ip");

    for (let i = 0; i < 10; i++) await d.observeRequest({ subject: "err", ip: "10.0.0.2", status: i < 6 ? 500 : 200 });
    assert.equal((await d.list({ subject: "err" }))[0]?.kind, "error_rate");
  });

  it("raises guard_blocks after 5 in 10 minutes and auth_failures after 20 from one address in a minute", async () => {
    const clock = { t: Date.UTC(2026, 2, 1) };
    const d = detector(clock);
    for (let i = 0; i < 4; i++) {
      await d.observeGuardBlock({ subject: "blk" });
      clock.t += 3 * MIN; // spread beyond the window: never 5 inside 10 minutes
    }
    assert.equal((await d.list({ subject: "blk" })).length, 0);
    for (let i = 0; i < 5; i++) await d.observeGuardBlock({ subject: "blk" });
    assert.equal((await d.list({ subject: "blk" }))[0]?.severity, "high");

    for (let i = 0; i < 19; i++) await d.observeAuthFailure("203.0.113.9");
    assert.equal((await d.list({ subject: "ip:203.0.113.9" })).length, 0);
    await d.observeAuthFailure("203.0.113.9");
    assert.equal((await d.list({ subject: "ip:203.0.113.9" }))[0]?.kind, "auth_failures");
    const audited = await audit.query({ type: "security_alert" });
    assert.ok(audited.events.some((e) => e.action === "alert.auth_failures"));
  });

  it("holds at most maxSubjects in memory", async () => {
    const clock = { t: Date.UTC(2026, 3, 1) };
    const d = detector(clock, { maxSubjects: 10 });
    for (let i = 0; i < 50; i++) await d.observeRequest({ subject: `s${i}`, ip: "10.0.0.3", status: 200 });
    assert.equal(d.trackedSubjects, 10);
    // The least recently seen goes first, and its baseline is written on the way out (token samples are
    // kept in memory until then): a subject pushed out by others still has its mean when it comes back.
    for (let i = 0; i < 25; i++) await d.observeTokens({ subject: "wanderer", tokens: 100 });
    for (let i = 0; i < 9; i++) await d.observeRequest({ subject: `t${i}`, ip: "10.0.0.3", status: 200 });
    await d.observeTokens({ subject: "wanderer", tokens: 100 }); // seen again: the most recent, kept
    for (let i = 9; i < 30; i++) await d.observeRequest({ subject: `t${i}`, ip: "10.0.0.3", status: 200 });
    assert.equal(d.trackedSubjects, 10);
    await d.observeTokens({ subject: "wanderer", tokens: 5_000 });
    const raised = (await d.list({ subject: "wanderer" })).map((a) => a.kind);
    assert.ok(raised.includes("token_spike"), `50x the evicted baseline's mean: ${raised.join(",")}`);
  });
});
