// The same do-nothing Worker in plain JavaScript (see Cargo.toml): the
// JavaScript runtime's floor for scripts/bench.sh.
import BODY from "./src/body.txt";

export default {
  async fetch() {
    return new Response(BODY, {
      headers: { "content-type": "application/json", "cache-control": "max-age=3600" },
    });
  },
};
