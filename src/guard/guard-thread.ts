// The body of a guard thread (GuardThreads): the caller's pipeline, policy and model, one scan per message.
import { parentPort, workerData } from "node:worker_threads";
import { Guard, type GuardPolicy } from "./pipeline.js";
import type { ThreadScanOptions } from "./threads.js";
import type { LinearModel } from "./train.js";

const data = workerData as { policy: GuardPolicy; model: LinearModel | undefined };
const guard = new Guard(data.policy, data.model === undefined ? {} : { model: data.model });

parentPort?.on("message", (task: { text: string; options: ThreadScanOptions }) => {
  let verdict;
  try {
    verdict = guard.scan(task.text, task.options);
  } catch {
    verdict = undefined; // scan() fails closed itself; a throw here is reported as a failed scan
  }
  parentPort?.postMessage({ verdict });
});
