import { afterEach } from 'vitest';
import { killStragglers } from './process.js';

// No test leaves a worker process behind, whether it passed, failed or timed out.
afterEach(killStragglers);
