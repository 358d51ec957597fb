import { EXIT_BAD_INPUT } from './exit-codes.js';

test('bad input exits with code 2 as the design contract says', () => {
  expect(EXIT_BAD_INPUT).toBe(2);
});
