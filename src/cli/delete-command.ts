export { deleteCommand } from './operator-commands.js';
