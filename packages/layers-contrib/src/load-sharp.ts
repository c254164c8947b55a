/**
 * sharp, imported on first use: its native binary is an optional install, and without it only
 * the work that needs it (drawing detections, reading training images) should fail, with a
 * message saying what was being done (`purpose`), not every import of this package. The error is
 * built by `toError` so each caller throws its own type.
 */
export async function loadSharp(purpose: string, toError: (message: string, cause: unknown) => Error): Promise<typeof import('sharp').default> {
  try {
    return (await import('sharp')).default;
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw toError(
      `${purpose} needs the 'sharp' package and its native build for ${process.platform}-${process.arch}, which could not be loaded ` +
        `(reinstall without --omit=optional): ${why}`,
      e,
    );
  }
}
