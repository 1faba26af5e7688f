import { StoresMemory } from "../layers/Stores.ts"
import { suites } from "./suites/index.ts"

suites("memory", StoresMemory)
