export * from "./ca.js";
export * from "./frame.js";
export * from "./envelope.js";
export * from "./endpoint.js";
