// The version lives beside the library (the worker records it too); the CLI prints it.
export { packageVersion } from "../version.js";
