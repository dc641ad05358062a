export { buildServer, type BuildServerOptions } from "./server.js";
export { authenticate, type Principal, type AuthDecision } from "./auth.js";
export { PUBLIC_ROUTES, type GatewayRoute, type RouteAccess } from "./route.js";
export { SECURITY_HEADERS } from "./headers.js";
