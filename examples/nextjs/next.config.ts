import type { NextConfig } from "next";

const config: NextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
  // The Route Handlers answer a few dozen bytes of JSON, which gzip only makes slower (it was
  // the largest CPU cost per request of `next start` under load: bench/nextjs_enqueue.py).
  // Vercel and any reverse proxy compress pages and assets themselves.
  compress: false,
  // `next dev` refuses its own dev resources to another origin than localhost; the READMEs
  // open the app at 127.0.0.1:3000, where the page would then never hydrate.
  allowedDevOrigins: ["127.0.0.1"],
};

export default config;
