export { applyCommand } from './operator-commands.js';
