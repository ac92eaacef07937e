// Both Workers for the load benchmark in ONE workerd process (Miniflare, the
// library `wrangler dev --local` runs on, same workerd build): the incumbent
// (scripts/bench/incumbent-worker, bundled by scripts/bench.sh) and our Rust
// Worker (adapter-worker/example, built by worker-build). Each is served on
// its own loopback port through a direct socket (no dev proxy in front),
// with the same compatibility date, a KV namespace bound as OAUTH_KV in the
// same local KV store (persisted under one directory), and no request
// logging. Started and stopped by scripts/bench.sh:
//
//   node scripts/bench/workers.mjs CONFIG.json
//
// CONFIG: {compatibilityDate, persistDir, workers: [{name, script, port,
//          bindings?, durableObjects?}]} (imports of *.wasm load as compiled
//          WebAssembly, of *.txt as text). Prints one line, the JSON
// {name: url}, once both answer; stops on SIGTERM/SIGINT.
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { Miniflare, Log, LogLevel } from "miniflare";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));

const workers = config.workers.map((w) => ({
  name: w.name,
  modules: true,
  scriptPath: w.script,
  modulesRoot: dirname(w.script),
  modulesRules: [
    { type: "CompiledWasm", include: ["**/*.wasm"] },
    { type: "Text", include: ["**/*.txt"] },
  ],
  compatibilityDate: config.compatibilityDate,
  compatibilityFlags: config.compatibilityFlags ?? [],
  kvNamespaces: { OAUTH_KV: `${w.name}-kv` },
  durableObjects: w.durableObjects,
  bindings: w.bindings ?? {},
  unsafeDirectSockets: [{ host: "127.0.0.1", port: w.port }],
}));

const mf = new Miniflare({
  host: "127.0.0.1",
  port: 0,
  cf: false,
  kvPersist: `${config.persistDir}/kv`,
  durableObjectsPersist: `${config.persistDir}/do`,
  log: new Log(LogLevel.WARN),
  workers,
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

await mf.ready;
const urls = {};
for (const w of config.workers) urls[w.name] = `http://127.0.0.1:${w.port}`;
console.log(JSON.stringify(urls));
