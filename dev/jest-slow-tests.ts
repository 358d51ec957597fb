// Loaded by jest.config.js for the integration and e2e tiers: starting real control
// planes takes seconds and steps wait on real controllers, so tests get long timeouts.
// (Jest 29 reads testTimeout only globally, not per project.) No speed is asserted here.
import { jest } from '@jest/globals';

jest.setTimeout(Number(process.env.PCLOUD_TEST_TIMEOUT_MS ?? 300_000));
