/**
 * Where hookline is and the secrets to talk to it: server-side only (`server-only` makes
 * importing this from a Client Component a build error). Read at request time, never
 * inlined into a bundle (no `NEXT_PUBLIC_` prefix).
 *
 * The defaults are the demo config's (`hookline.example.toml`: its port, its DEMO API key
 * and notify secret), so `make run` + `npm run dev` work with nothing set. Set all three
 * in production.
 */
import "server-only";

export interface HooklineSettings {
  url: string;
  apiKey: string;
  notifySecret: string;
}

const DEMO: HooklineSettings = {
  url: "http://127.0.0.1:8400",
  apiKey: "demo-api-key",
  notifySecret: "whsec_ZGVtby1ob29rbGluZS1ub3RpZnktc2VjcmV0LTAxMjM=",
};

export function hooklineSettings(): HooklineSettings {
  return {
    url: process.env.HOOKLINE_URL || DEMO.url,
    apiKey: process.env.HOOKLINE_API_KEY || DEMO.apiKey,
    notifySecret: process.env.HOOKLINE_NOTIFY_SECRET || DEMO.notifySecret,
  };
}
