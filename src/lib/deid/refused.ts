/** A refusal: the instance is not released, for the reason given (no identifying value in it). */
export class RefusedError extends Error {}
