import type { NextConfig } from "next";

const config: NextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
  // The Route Handlers answer a few dozen bytes of JSON, which gzip only makes slower (it was
  // the largest CPU cost per request of `next start` under load: bench/nextjs_enqueue.py).
  // Vercel and any reverse proxy compress pages and assets themselves.
  compress: false,
};

export default config;
