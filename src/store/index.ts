export {
  openStore,
  checkStore,
  parseDatabaseUrl,
  redactDatabaseUrl,
  type Store,
  type StoreDialect,
  type StoreLocation,
} from "./database.js";
export { Lease } from "./lease.js";
export { writeTransaction } from "./transaction.js";
export { LATEST_MIGRATION, MIGRATION_NAMES } from "./migrations.js";
export type * from "./schema.js";
