/** Exit code for usage errors and bad input (DESIGN.md: "exit code 2"). */
export const EXIT_BAD_INPUT = 2;
/** Exit code for failures that are not the caller's fault. */
export const EXIT_FAILURE = 1;
