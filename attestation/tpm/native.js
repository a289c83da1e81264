// node-tpm2-esys: loader of the compiled binding (build/Release/quorate_tpm.node). Plain ESM
// JavaScript so the package also works from node_modules (where Node does not strip types);
// the types are in native.d.ts.
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const ADDON_PATH = fileURLToPath(new URL('./build/Release/quorate_tpm.node', import.meta.url))

let cached

/** Loads the addon once. Throws an Error with code ERR_TPM_ADDON_MISSING when it is not built. */
export function loadNative () {
  if (cached !== undefined) return cached
  if (!existsSync(ADDON_PATH)) {
    const err = new Error(`the TPM addon is not built (${ADDON_PATH} missing): run node-gyp rebuild in ${fileURLToPath(new URL('.', import.meta.url))}`)
    err.code = 'ERR_TPM_ADDON_MISSING'
    throw err
  }
  cached = createRequire(import.meta.url)(ADDON_PATH)
  return cached
}

/** A new, unopened connection: `await ctx.open('swtpm:host=127.0.0.1,port=2321')`. */
export function createContext () {
  return new (loadNative().Context)()
}

/** Tss2_RC_Decode text of a TSS2_RC. */
export function decodeRc (rc) {
  return loadNative().decodeRc(rc >>> 0)
}
