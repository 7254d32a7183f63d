/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build goes into the Python package, which serves it (src/errands/web/spa.py); it is never committed.
// `npm run dev` proxies the API to a running `errands serve` (ERRANDS_API, default http://127.0.0.1:8000).
const api = process.env.ERRANDS_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../src/errands/web/static",
    emptyOutDir: true,
    // the strict CSP allows no inline script: keep every asset a file, even tiny ones
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 700,
  },
  server: {
    proxy: { "/api": { target: api, changeOrigin: false }, "/metrics": api, "/healthz": api, "/readyz": api },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
    // a loaded 2-core machine (CI beside the Python suite) runs these slowly: time is not what they test
    testTimeout: 30_000,
  },
});
