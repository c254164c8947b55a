// wat2wasm through wabt, for the build scripts of this package's WebAssembly modules.

/**
 * The module `text` assembled with exactly `features` enabled (so a stray relaxed or atomic op
 * fails the build that should not have it); `fileName` names it in wabt's error messages.
 * @param {{ parseWat: Function }} wabt an initialised wabt instance
 * @param {string} fileName
 * @param {string} text
 * @param {Record<string, boolean>} features
 * @returns {Uint8Array}
 */
export function assembleWat(wabt, fileName, text, features) {
  const module = wabt.parseWat(fileName, text, features);
  try {
    module.resolveNames();
    module.validate(features);
    return module.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    module.destroy();
  }
}
