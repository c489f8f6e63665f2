// Builds the app into the Python package (src/tradesignals/web), which the API serves at `/`.
// Everything is bundled: no CDN, no network at run time.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/tradesignals/web",
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
